"""The blip_retrieval app: BLIP image-text retrieval (ITC + ITM), official-exact, on DeepSpeed.

Importing the app imports no torch (the model is imported when a mode runs), so that a bad command is refused
within a second.
"""
from appzoo.blip_retrieval.app import BlipRetrievalApp
from easyretrieval.registry import register_command

__all__ = ["BlipRetrievalApp"]


@register_command("convert")
def convert(argv):
    """`easyretrieval convert --to hf|blip ...` (appzoo/blip_retrieval/model/commands.py, imported when run)."""
    from appzoo.blip_retrieval.model.commands import convert_command

    return convert_command(argv)
