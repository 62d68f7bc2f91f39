print("moderation-gateway")
