"""Training: the loop (float twin -> BatchNorm fold -> QAT, resume, early stopping, report), the
size rule that picks the network from the data, and the training-batch augmentation."""
