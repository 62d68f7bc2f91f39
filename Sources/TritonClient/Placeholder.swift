public enum TritonClientPlaceholder {}
