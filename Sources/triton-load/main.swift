print("triton-load")
