"""Learning from the traffic a gateway routes: the decision log, labels from a judge tier, and retraining."""
