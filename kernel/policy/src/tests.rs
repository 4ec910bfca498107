//! Tests of the document reader and the kinds.
