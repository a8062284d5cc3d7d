"""Evaluation of blip_retrieval: official-exact two-stage retrieval scores, recall metrics, outputs."""
from appzoo.blip_retrieval.evaluation.evaluator import EvalResult, RetrievalEvaluator, TopK
from appzoo.blip_retrieval.evaluation.metrics import itm_eval, itm_eval_topk
from appzoo.blip_retrieval.evaluation.outputs import save_result

__all__ = ["EvalResult", "RetrievalEvaluator", "TopK", "itm_eval", "itm_eval_topk", "save_result"]
