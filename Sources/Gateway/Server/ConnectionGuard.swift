import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes

/// Counts open connections per peer address, shared by all connections.
final class PeerConnectionCounter: Sendable {
    private let counts = NIOLockedValueBox([String: Int]())
    let limit: Int
    init(limit: Int) { self.limit = limit }

    func open(_ peer: String) -> Bool {
        counts.withLockedValue { counts in
            let n = counts[peer, default: 0]
            guard n < limit else { return false }
            counts[peer] = n + 1
            return true
        }
    }

    func close(_ peer: String) {
        counts.withLockedValue { counts in
            let n = counts[peer, default: 1] - 1
            counts[peer] = n <= 0 ? nil : n
        }
    }
}

/// Per-connection guard after the HTTP decoder: refuses a peer's connection
/// beyond `listen.max_connections_per_peer`, answers 408 and closes when the
/// first request head does not arrive within `timeouts.request` of the
/// connection opening (headers trickled, or a client that never sends), answers
/// 408 and closes when a request's body has not fully arrived within
/// `timeouts.request` of its head (or only closes, if the handler already
/// answered without waiting for the body), and quietly closes a keep-alive
/// connection left idle that long after a response.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let counter: PeerConnectionCounter
    let headTimeout: TimeAmount
    private var peer: String?
    private var timer: Scheduled<Void>?
    private var bodyTimer: Scheduled<Void>?
    /// Request heads read and responses finished: a client may pipeline, so the
    /// request whose body is arriving can be later than the one being answered.
    private var headsRead = 0
    private var responsesEnded = 0
    /// The latest request's body has fully arrived (its `.end` was read).
    private var bodyComplete = true
    /// The oldest unanswered request's response head has been written.
    private var responseStarted = false
    private var answeredByGuard = false

    private var requestInProgress: Bool { headsRead > responsesEnded }

    init(counter: PeerConnectionCounter, headTimeout: TimeAmount) {
        self.counter = counter
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard peer == nil else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard counter.open(address) else {
            context.close(promise: nil)
            return
        }
        peer = address
        armTimer(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        bodyTimer?.cancel()
        bodyTimer = nil
        if let peer { counter.close(peer) }
        peer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        bodyTimer?.cancel()
        if let peer { counter.close(peer) }
        peer = nil
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = schedule(context) { $0.timedOut(context: $1) }
    }

    /// Runs `action` on this channel's event loop once `timeouts.request` has passed.
    private func schedule(
        _ context: ChannelHandlerContext, _ action: @escaping (ConnectionGuard, ChannelHandlerContext) -> Void
    ) -> Scheduled<Void> {
        let loopBound = NIOLoopBound((self, context, action), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: headTimeout) {
            let (handler, context, action) = loopBound.value
            action(handler, context)
        }
    }

    private func timedOut(context: ChannelHandlerContext) {
        guard !requestInProgress, context.channel.isActive else { return }
        guard responsesEnded == 0 else {
            // An idle keep-alive connection (a pooled client between requests):
            // close it quietly. An unsolicited 408 here could be read by the
            // client as the answer to a request it is sending at that moment.
            context.close(promise: nil)
            return
        }
        answer408(context: context, detail: "The request head did not arrive in time.")
    }

    private func bodyTimedOut(context: ChannelHandlerContext) {
        bodyTimer = nil
        guard !bodyComplete, context.channel.isActive else { return }
        // The body reader must fail, not see a short body as the whole one.
        defer { context.fireErrorCaught(BodyDeadlineExceeded()) }
        // A 408 only when it can be read as this request's answer: the late request is
        // the only one unanswered and its handler has not started answering. Otherwise
        // (an answer under way, or an earlier pipelined request still being answered)
        // any extra bytes would corrupt the exchange: just close.
        guard headsRead - responsesEnded == 1, !responseStarted else {
            context.close(promise: nil)
            return
        }
        answeredByGuard = true
        answer408(context: context, detail: "The request body did not arrive in time.")
    }

    private func answer408(context: ChannelHandlerContext, detail: String) {
        let requestID = RandomIDs.uuid()
        var head = HTTPResponse(status: .requestTimeout)
        head.headerFields[.connection] = "close"
        head.headerFields[.contentType] = "application/problem+json"
        head.headerFields[.requestID] = requestID
        let body = ByteBuffer(bytes: GatewayProblem(.requestTimeout, "request-timeout", detail).body(instance: requestID))
        head.headerFields[.contentLength] = String(body.readableBytes)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            headsRead += 1
            bodyComplete = false
            timer?.cancel()
            timer = nil
            bodyTimer?.cancel()
            bodyTimer = schedule(context) { $0.bodyTimedOut(context: $1) }
        case .end:
            bodyComplete = true
            bodyTimer?.cancel()
            bodyTimer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if answeredByGuard {
            // The 408 already answered this request and the connection is closing:
            // the handler's late answer must not follow it.
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head:
            responseStarted = true
        case .end:
            responseStarted = false
            responsesEnded += 1
            // The idle timer runs only while no request is waiting for its answer.
            if !requestInProgress { armTimer(context: context) }
        case .body:
            break
        }
        context.write(data, promise: promise)
    }
}

/// Fired into the pipeline when a request body misses its deadline, so a handler reading it
/// gets an error instead of a body that merely ended early.
struct BodyDeadlineExceeded: Error {}
