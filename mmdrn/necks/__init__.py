"""mmdrn necks."""
