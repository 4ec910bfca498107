//! Policies: deployment, performance protection, troubleshooting, tenants and VLANs.
