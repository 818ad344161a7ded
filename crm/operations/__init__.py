"""What the platform does in each user's CRM: provisioning, contact sync, messages, jobs."""
