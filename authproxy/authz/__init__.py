"""External authorization mode: a decision port running the gate for Envoy, Istio, nginx and Traefik."""
