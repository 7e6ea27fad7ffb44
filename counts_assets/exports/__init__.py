"""The two 211 Counts files: building, CSV formatting, publishing."""
