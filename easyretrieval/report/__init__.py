"""Things people look at: HTML pages of retrieval results and PNG training curves."""
from easyretrieval.report.curves import Panel, plot_curves
from easyretrieval.report.html_report import Hit, QueryResult, write_html_report

__all__ = ["Hit", "Panel", "QueryResult", "plot_curves", "write_html_report"]
