"""The SR4 enhancer (RRDBNet x4) and the decision agent policy (AdaSlide)."""
