"""Autoscaling on the load the engines report: the Ray Serve policy and the status record it publishes.

``serve.autoscale.policy`` is what Ray Serve's controller runs (``AutoscalingConfig.policy``); it imports only
the standard library (Ray lazily) because Serve pickles it into the controller.
"""
