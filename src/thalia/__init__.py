"""thalia: thalamo-cortical modelling at two scales — neural masses and spiking circuits."""

__version__ = "0.1.0"
