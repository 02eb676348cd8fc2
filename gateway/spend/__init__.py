"""Spend control: each request's cost cap and each subject's rolling daily budget, over a spend store."""
