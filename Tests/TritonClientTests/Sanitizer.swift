import Foundation
import Testing

/// Set by `scripts/test --sanitizer` (address or thread): everything runs several times
/// slower and a sanitizer's shadow memory counts in the RSS, so the few tests whose
/// assertion is a wall-clock or memory bound are disabled in that run, and only there.
let sanitizerRun = ProcessInfo.processInfo.environment["GATEWAY_TEST_SANITIZER"] != nil
let sanitizerReason: Comment = "a wall-clock bound: meaningless at a sanitizer's slowdown (scripts/test --sanitizer)"
