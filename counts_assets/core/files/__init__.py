"""What a pair is called and holds: file names and headers, CSV formatting, the periods (days
and months) and their bounds."""
