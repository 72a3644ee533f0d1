//! Placeholder: filled in by the engine issue.
