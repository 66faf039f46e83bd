"""The model server: one ASGI app speaking the Open Inference Protocol v2 and MLflow's scoring
protocol, with adaptive batching, Prometheus metrics, a prediction log and hot reload.

It imports the registry and the layers below it, never the pipeline or tuning: a production
server installs and starts without the training stack.
"""
