"""Data of blip_retrieval: registered datasets, official transforms, validation, synthetic data, loaders."""
from appzoo.blip_retrieval.data.builders import DATASETS, build_dataset, data_files
from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset, RetrievalTrainDataset
from appzoo.blip_retrieval.data.loaders import create_eval_image_loader, create_train_loader
from appzoo.blip_retrieval.data.prepare import prepare_data
from appzoo.blip_retrieval.data.randaugment import RandomAugment
from appzoo.blip_retrieval.data.synthetic import make_synthetic_dataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.data.validation import validate_annotations

__all__ = [
    "DATASETS", "RandomAugment", "RetrievalEvalDataset", "RetrievalTrainDataset", "build_dataset",
    "create_eval_image_loader", "create_train_loader", "create_transform", "data_files", "make_synthetic_dataset",
    "prepare_data", "validate_annotations",
]
