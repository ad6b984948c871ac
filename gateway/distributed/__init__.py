"""Past one process: the gateway on Ray Serve (serve_app) and corpus embedding on Ray Data
(embed_corpus).

Ray is the optional extra `ray` (`pip install 'embedding-gateway[ray]'`). Only serve_app and
embed_corpus import it; options, routing and asgi are plain Python, so they load and test
without it.
"""
