"""The worker's Faust edge: one thin agent per topic on one batch-loop helper, the state tables,
the worker's HTTP routes and process plumbing; the stages they drive import no Faust."""
