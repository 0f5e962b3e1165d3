"""Classical baselines whose run folders sit beside network runs in reports and studies.

``resnetlab.baselines.hog_svm.train_hog_svm`` is the way in (``resnetlab baseline hog-svm`` on
the command line); ``hog`` extracts and caches the features, ``svm`` fits the classifier. Import
from the modules: this package keeps its import light so building the command line stays fast.
"""
