"""The tutors' console: sign-in, the review queue, the roster and webhooks to the LMS."""
