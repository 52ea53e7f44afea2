"""Load testing: a Locust user that browses like OpenSeadragon, and a local server to aim it at."""
