"""Runnable kflow examples: ``kflow run examples.basic:order o-1 9.5`` with a processor and a worker up."""
