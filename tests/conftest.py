"""Test session setup: a persistent XLA compilation cache shared by the tests' processes.

Many tests (resume, sharding, the main job) compile the same programs in
several runs or subprocesses; the cache compiles each once per session.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="dgmjax-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
