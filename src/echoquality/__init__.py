"""EchoQuality: quality control for echocardiogram DICOM cines with an R(2+1)D video network."""

__version__ = "0.1.0"
