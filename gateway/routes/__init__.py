"""HTTP routes: thin edges that validate, delegate and translate."""
