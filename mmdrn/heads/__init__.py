"""mmdrn heads."""
