"""easyretrieval: an EasyNLP-style app-zoo framework for image-text retrieval with BLIP."""
from setuptools import find_packages, setup

setup(
    name="easyretrieval",
    version="0.1.0",
    description="App-zoo framework for BLIP image-text retrieval under DeepSpeed",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["easyretrieval", "easyretrieval.*", "appzoo", "appzoo.*"]),
    install_requires=[
        # Not pinned: any torch with a working torchvision (timm imports it) will do.
        "torch>=2.1",
        "torchvision",
        "deepspeed>=0.14",
        "timm>=1.0",
        "transformers>=4.40",
        "huggingface_hub",  # HF hub ids and the default tokenizer (its cache, HF_ENDPOINT, HF_HUB_OFFLINE)
        "safetensors",  # the weights we write (save_pretrained folders, best/, convert --to hf|folder)
        "oss2>=2.18",
        "Pillow",
        "numpy",
        # The official RandomAugment is written on OpenCV (warpAffine, filter2D, calcHist); ours calls the same.
        "opencv-python-headless",
        "tqdm",
        "psutil",
        "faiss-cpu",
        "matplotlib",
        "PyYAML",
        "tensorboard",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "console_scripts": ["easyretrieval=easyretrieval.cli:main"],
        # Apps are plugins: the core finds every app through this group, ours included.
        "easyretrieval.apps": ["blip_retrieval=appzoo.blip_retrieval:BlipRetrievalApp"],
    },
)
