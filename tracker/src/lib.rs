//! Placeholder: filled in by the tracker issue.
