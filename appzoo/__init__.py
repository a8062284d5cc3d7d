"""Apps that plug into easyretrieval through the `easyretrieval.apps` entry-point group."""
