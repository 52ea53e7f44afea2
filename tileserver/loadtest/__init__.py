"""Load testing: a Locust user that browses like OpenSeadragon, and local servers (tileserver, Redis, nginx) to aim it at."""
