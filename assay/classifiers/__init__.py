"""Quality classifiers for curation: labels from shards, two classifier kinds (fastText, frozen encoder +
linear head) behind one interface, sealed model directories, held-out evaluation with a threshold policy,
and Beam RunInference handlers. See docs/classifiers.md."""
