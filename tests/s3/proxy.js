// A fault-injecting HTTP proxy for S3 tests. It forwards every request to the
// S3 server unchanged (the Host header included, so signatures still verify)
// and sabotages a fraction of them in one of four ways, chosen at random:
//   - answer 500 InternalError with S3's XML error body,
//   - answer 503 SlowDown with S3's XML error body,
//   - drop the connection while the request is still arriving,
//   - let the server execute the request, then drop the connection halfway
//     through the response body (or before the response when it has none).
// Each sabotaged request adds one to a count kept in `statsFile`, which the
// C++ test kit reads (S3TestServer::faults_injected).
'use strict'

const fs = require('node:fs')
const http = require('node:http')

// A small seeded generator (mulberry32): the choices repeat from run to run for
// the same order of requests.
function seededRandom(seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function errorXml(code, message, id) {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message>` +
    `<RequestId>injected-fault-${id}</RequestId></Error>`
  )
}

function startProxy({ upstreamPort, faultRate, statsFile, seed = 1 }) {
  const random = seededRandom(seed)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  let faults = 0

  const recordFault = () => {
    faults += 1
    if (statsFile) {
      // Write then rename, so that a reader never sees a half-written number.
      const tmp = `${statsFile}.tmp`
      fs.writeFileSync(tmp, String(faults))
      fs.renameSync(tmp, statsFile)
    }
  }

  const forward = (req, res, onResponse) => {
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      onResponse
    )
    upstream.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502)
        res.end()
      } else {
        res.destroy()
      }
    })
    req.on('close', () => {
      if (!req.complete) upstream.destroy()
    })
    req.pipe(upstream)
  }

  const passThrough = (req, res) =>
    forward(req, res, (up) => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })

  const answerError = (req, res, status, code, message) => {
    req.resume()
    req.on('end', () => {
      const body = errorXml(code, message, faults)
      res.writeHead(status, {
        'Content-Type': 'application/xml',
        'Content-Length': Buffer.byteLength(body),
      })
      res.end(body)
    })
  }

  const dropDuringRequest = (req) => {
    let dropped = false
    const drop = () => {
      if (!dropped) {
        dropped = true
        req.socket.destroy()
      }
    }
    req.on('data', drop)
    req.on('end', drop)
  }

  const dropDuringResponse = (req, res) =>
    forward(req, res, (up) => {
      const chunks = []
      up.on('data', (chunk) => chunks.push(chunk))
      up.on('end', () => {
        const body = Buffer.concat(chunks)
        if (body.length < 2) {
          res.socket.destroy()
          return
        }
        res.writeHead(up.statusCode, up.headers)
        res.write(body.subarray(0, body.length >> 1), () => res.socket.destroy())
      })
    })

  const server = http.createServer((req, res) => {
    // A client that goes away must not crash the proxy.
    req.on('error', () => {})
    res.on('error', () => {})
    if (random() >= faultRate) {
      passThrough(req, res)
      return
    }
    recordFault()
    switch (Math.floor(random() * 4)) {
      case 0:
        answerError(req, res, 500, 'InternalError', 'We encountered an internal error. Please try again.')
        break
      case 1:
        answerError(req, res, 503, 'SlowDown', 'Please reduce your request rate.')
        break
      case 2:
        dropDuringRequest(req)
        break
      default:
        dropDuringResponse(req, res)
        break
    }
  })
  server.on('clientError', (_err, socket) => socket.destroy())

  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

module.exports = { startProxy }
