"""The domain: sign-ins and codes, delivery, phones, diagnosis. Free of request objects."""
