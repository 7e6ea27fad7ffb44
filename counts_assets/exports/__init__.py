"""The two 211 Counts files (contract §4): building, CSV formatting, publishing."""
