"""`sonic-ray view`: a browser viewer (viser) for stored motions and for policies running live.

Ray-free. The frame and pose logic (`geometry`, `replay`, `session`) imports neither viser nor a
GUI, so it is tested without a browser; `server`, `motions_app` and `policy_app` put it on a
viser page. Nothing here writes to a motion store, a checkpoint or a run.
"""
