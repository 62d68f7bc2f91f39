/// The OpenAPI 3.1 document served at `/openapi.yaml`. A test checks that every
/// route of the router is in it and every path in it is a route.
enum OpenAPIDocument {
    static let yaml = """
openapi: 3.1.0
info:
  title: moderation-gateway
  version: 1.0.0
  description: |
    Image moderation API and KServe v2 passthrough in front of Triton.
    Every refusal is application/problem+json (RFC 9457) with the request id in `instance`.
    Every response carries X-Request-Id. Permissions come from the bearer token's roles:
    `moderate` for /v1/moderate, `infer` for /v2 (with a per-role model allowlist), `admin` for
    repository, shared-memory, trace and logging endpoints.
tags:
  - name: moderation
  - name: kserve
  - name: admin
  - name: operations
paths:
  /healthz:
    get:
      operationId: healthz
      summary: Process is alive
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Alive
  /readyz:
    get:
      operationId: readyz
      summary: Triton reachable and the configured models ready
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Ready
        '503':
          description: Not ready (Retry-After set)
  /metrics:
    get:
      operationId: metrics
      summary: Prometheus text exposition
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Metrics
  /openapi.yaml:
    get:
      operationId: openapi
      summary: This document
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: OpenAPI 3.1 YAML
  /v1/moderate:
    post:
      operationId: moderate
      summary: Moderate one image
      tags: [moderation]
      security:
        - bearer: []
      x-permission: moderate
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: true
        content:
          image/jpeg:
            schema: {type: string, contentMediaType: image/jpeg}
          image/png:
            schema: {type: string, contentMediaType: image/png}
          image/webp:
            schema: {type: string, contentMediaType: image/webp}
          image/gif:
            schema: {type: string, contentMediaType: image/gif}
          image/bmp:
            schema: {type: string, contentMediaType: image/bmp}
          application/json:
            schema: {$ref: '#/components/schemas/ModerationRequest'}
      responses:
        '200':
          description: Moderation decision
          content:
            application/json:
              schema: {$ref: '#/components/schemas/ModerationResult'}
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '408':
          $ref: '#/components/responses/Problem'
        '413':
          $ref: '#/components/responses/Problem'
        '415':
          $ref: '#/components/responses/Problem'
        '422':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '431':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2:
    get:
      operationId: serverMetadata
      summary: Server metadata
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/health/live:
    get:
      operationId: serverLive
      summary: Server liveness
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/health/ready:
    get:
      operationId: serverReady
      summary: Server readiness
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: metadata
      summary: Model metadata
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/ready:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: ready
      summary: Model readiness
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/config:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: config
      summary: Model configuration
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/stats:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: stats
      summary: Model statistics
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/infer:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: infer
      summary: Inference (JSON or binary tensor extension)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/InferRequest'}
          application/octet-stream:
            description: Binary tensor extension; the JSON header length is in Inference-Header-Content-Length.
            schema: {type: string, contentMediaType: application/octet-stream}
      responses:
        '200':
          description: InferResponse
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '413':
          $ref: '#/components/responses/Problem'
        '415':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/versions/{version}:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
      - name: version
        in: path
        required: true
        schema:
          type: string
          pattern: '^[0-9]+$'
    get:
      operationId: metadataVersion
      summary: Model metadata (one version)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/versions/{version}/ready:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
      - name: version
        in: path
        required: true
        schema:
          type: string
          pattern: '^[0-9]+$'
    get:
      operationId: readyVersion
      summary: Model readiness (one version)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/versions/{version}/config:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
      - name: version
        in: path
        required: true
        schema:
          type: string
          pattern: '^[0-9]+$'
    get:
      operationId: configVersion
      summary: Model configuration (one version)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/versions/{version}/stats:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
      - name: version
        in: path
        required: true
        schema:
          type: string
          pattern: '^[0-9]+$'
    get:
      operationId: statsVersion
      summary: Model statistics (one version)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/versions/{version}/infer:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
      - name: version
        in: path
        required: true
        schema:
          type: string
          pattern: '^[0-9]+$'
    post:
      operationId: inferVersion
      summary: Inference (JSON or binary tensor extension) (one version)
      tags: [kserve]
      security:
        - bearer: []
      x-permission: infer
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/InferRequest'}
          application/octet-stream:
            description: Binary tensor extension; the JSON header length is in Inference-Header-Content-Length.
            schema: {type: string, contentMediaType: application/octet-stream}
      responses:
        '200':
          description: InferResponse
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '413':
          $ref: '#/components/responses/Problem'
        '415':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/stats:
    get:
      operationId: allStats
      summary: Statistics of all models
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/repository/index:
    post:
      operationId: repositoryIndex
      summary: Repository index
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/repository/models/{model}/load:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: repositoryLoad
      summary: Model load
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/repository/models/{model}/unload:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: repositoryUnload
      summary: Model unload
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/systemsharedmemory/status:
    get:
      operationId: systemsharedmemoryStatus
      summary: systemsharedmemory status
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/systemsharedmemory/region/{region}/status:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: systemsharedmemoryRegionStatus
      summary: systemsharedmemory region status
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/systemsharedmemory/unregister:
    post:
      operationId: systemsharedmemoryUnregisterAll
      summary: systemsharedmemory unregister all
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/systemsharedmemory/region/{region}/register:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: systemsharedmemoryRegionRegister
      summary: systemsharedmemory region register
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/systemsharedmemory/region/{region}/unregister:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: systemsharedmemoryRegionUnregister
      summary: systemsharedmemory region unregister
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/cudasharedmemory/status:
    get:
      operationId: cudasharedmemoryStatus
      summary: cudasharedmemory status
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/cudasharedmemory/region/{region}/status:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: cudasharedmemoryRegionStatus
      summary: cudasharedmemory region status
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/cudasharedmemory/unregister:
    post:
      operationId: cudasharedmemoryUnregisterAll
      summary: cudasharedmemory unregister all
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/cudasharedmemory/region/{region}/register:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: cudasharedmemoryRegionRegister
      summary: cudasharedmemory region register
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/cudasharedmemory/region/{region}/unregister:
    parameters:
      - name: region
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    post:
      operationId: cudasharedmemoryRegionUnregister
      summary: cudasharedmemory region unregister
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/trace/setting:
    get:
      operationId: traceGet
      summary: Global trace settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
    post:
      operationId: tracePost
      summary: Update global trace settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/models/{model}/trace/setting:
    parameters:
      - name: model
        in: path
        required: true
        schema:
          type: string
          pattern: '^[A-Za-z0-9_.-]{1,128}$'
    get:
      operationId: modelTraceGet
      summary: Model trace settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
    post:
      operationId: modelTracePost
      summary: Update model trace settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /v2/logging:
    get:
      operationId: loggingGet
      summary: Log settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
    post:
      operationId: loggingPost
      summary: Update log settings
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: false
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: Triton's answer
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
  /admin/traffic:
    get:
      operationId: adminTraffic
      summary: Traffic routes: revision, weights in force, canary and mirror state, last reload
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
  /admin/traffic/reload:
    post:
      operationId: adminTrafficReload
      summary: Reload the traffic file now (200 accepted or unchanged)
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '422':
          description: The file was refused; `problems` names file, line and key; the last good revision keeps serving
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
  /admin/audit:
    get:
      operationId: adminAudit
      summary: Audit writer statistics: records, fsyncs, records per fsync, fsync latency, failure
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      bearerFormat: JWT
  parameters:
    RequestId:
      name: X-Request-Id
      in: header
      required: false
      description: Used as the request id when it matches the pattern; otherwise one is generated.
      schema: {type: string, pattern: '^[A-Za-z0-9._-]{1,128}$'}
    Traceparent:
      name: traceparent
      in: header
      required: false
      description: W3C trace context; forwarded to Triton (a new one is created when absent or malformed).
      schema: {type: string}
  responses:
    Problem:
      description: A refusal (RFC 9457). 401 carries WWW-Authenticate; 429 and 503 carry Retry-After.
      content:
        application/problem+json:
          schema: {$ref: '#/components/schemas/Problem'}
  schemas:
    Problem:
      type: object
      required: [type, title, status, detail, instance]
      properties:
        type: {type: string, format: uri}
        title: {type: string}
        status: {type: integer}
        detail: {type: string}
        instance: {type: string, description: The request id}
        error: {type: string, description: Same as detail; read by KServe clients}
    ModerationRequest:
      type: object
      required: [image]
      properties:
        image: {type: string, contentEncoding: base64}
    ModerationResult:
      type: object
      required: [request_id, decision, reasons, scores, text, model, timing_ms]
      properties:
        request_id: {type: string}
        decision: {type: string, enum: [allow, review, block]}
        reasons: {type: array, items: {}}
        scores: {type: object}
        text: {type: string}
        model:
          type: object
          properties:
            route: {type: string}
            variant: {type: string}
            name: {type: string}
            version: {type: [string, 'null']}
        timing_ms:
          type: object
          properties:
            total: {type: number}
            upstream: {type: number}
    InferRequest:
      type: object
      required: [inputs]
      properties:
        id: {type: string}
        parameters: {type: object}
        inputs:
          type: array
          items:
            type: object
            required: [name, shape, datatype]
            properties:
              name: {type: string}
              shape: {type: array, items: {type: integer, minimum: 0}}
              datatype: {type: string, enum: [BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES]}
              parameters: {type: object}
              data: {}
        outputs:
          type: array
          items:
            type: object
            required: [name]
            properties:
              name: {type: string}
              parameters: {type: object}
"""
}
