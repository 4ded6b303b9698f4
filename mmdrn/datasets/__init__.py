"""mmdrn datasets."""
