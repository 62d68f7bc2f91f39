import Foundation
import Testing

/// The integration suites need the Triton instances that `scripts/test` starts; without
/// them they are disabled, which a plain `swift test` would report only as quiet skips.
/// This test turns that into a failure that says what to do.
@Suite struct IntegrationEnvironmentTests {
    static let variables = ["TRITON_URL", "TRITON_EXPLICIT_URL", "TRITON_H2C_URL"]

    @Test(.disabled(if: ProcessInfo.processInfo.environment["SKIP_INTEGRATION"] == "1",
                    "SKIP_INTEGRATION=1: unit tests only, the Triton integration suites were skipped on request"))
    func integrationSuitesHaveTheirTriton() {
        let environment = ProcessInfo.processInfo.environment
        let missing = Self.variables.filter { (environment[$0] ?? "").isEmpty }
        #expect(missing.isEmpty, """
            The TritonClient integration suites did not run: \(missing.joined(separator: ", ")) not set. \
            Run ./scripts/test (it starts the test Tritons and sets these), or set SKIP_INTEGRATION=1 \
            to run the unit tests alone.
            """)
    }
}
