"""Real, loopback-only test peers for sserelay: a scriptable upstream, process helpers, a
throwaway redis-server. Used by the test suite and the benchmark; useful to anyone testing
an app built on sserelay."""
