"""pandera schemas of both files; the same schemas gate publishing and delivery."""
