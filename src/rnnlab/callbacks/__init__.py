"""Lightning callbacks that rnnlab adds to the ones Lightning ships."""
