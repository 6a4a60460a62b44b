// Starts the S3 test server for tests/testutil/s3_test_server.cc:
// @20minutes/s3rver (which verifies SigV4 signatures) on 127.0.0.1, port 0, in
// a given directory with one bucket and one key pair, optionally behind the
// fault-injecting proxy of proxy.js, in this same process.
//
// Configuration comes from the environment, so that no secret shows in `ps`:
//   KINDLING_S3_DIR          directory for the data (required)
//   KINDLING_S3_BUCKET       bucket to create (default "bucket")
//   KINDLING_S3_ACCESS_KEY   access key id (default MYACCESSKEY)
//   KINDLING_S3_SECRET_KEY   secret access key (default my-secret)
//   KINDLING_S3_FAULT_RATE   fraction of requests the proxy sabotages (default 0)
//   KINDLING_S3_STATS_FILE   where the proxy keeps its count of sabotaged requests
//   KINDLING_S3_SEED         seed of the proxy's choices (default 1)
//   KINDLING_S3_TLS_KEY      with KINDLING_S3_TLS_CERT: PEM files of the server's key
//   KINDLING_S3_TLS_CERT     and certificate; HTTPS instead of HTTP (no proxy then)
// Prints exactly one line on stdout, "PORT <n>", the port clients should use
// (the proxy's when there is one), then serves until killed.
//
// Over HTTPS, clients name the server `localhost` (certificates name DNS
// names): it then also listens on ::1, same port, when the machine has IPv6
// loopback, because some clients (pgBackRest 2.45) try only the first address
// the name resolves to, which may be ::1.
//
// Run it as `node --openssl-legacy-provider server.js`: s3rver encrypts its
// ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in the legacy
// provider, so without the flag every listing of more than 1000 keys fails (500).
'use strict'

const crypto = require('node:crypto')
const fs = require('node:fs')
const https = require('node:https')
const path = require('node:path')

patchTrailingSlashSignatures()
const S3rver = require('@20minutes/s3rver')
const AWSAccount = require('@20minutes/s3rver/lib/models/account')
const { startProxy } = require('./proxy')

// Fails at start rather than at the first long listing.
function checkDesAvailable() {
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8))
  } catch (err) {
    throw new Error(`DES is unavailable (${err.message}); run node with --openssl-legacy-provider`)
  }
}

// s3rver signs a path-style bucket-level request with a trailing slash
// (`GET /bucket/?list-type=2...`, which pgBackRest sends) over `/bucket`, so
// a correctly signed request gets 403 SignatureDoesNotMatch. Real S3 signs the
// path as sent. Its authentication middleware builds the signed path from
// ctx.params.bucket: for the check only, the bucket name gets the slash back.
function patchTrailingSlashSignatures() {
  const modulePath = require.resolve('@20minutes/s3rver/lib/middleware/authentication')
  const makeAuthentication = require(modulePath)
  require.cache[modulePath].exports = (...args) => {
    const authenticate = makeAuthentication(...args)
    return async function authentication(ctx, next) {
      const { bucket, key } = ctx.params
      if (!bucket || key || ctx.state.vhost || ctx.path !== `/${bucket}/`) {
        return authenticate(ctx, next)
      }
      ctx.params.bucket = `${bucket}/`
      const restore = () => {
        ctx.params.bucket = bucket
      }
      try {
        return await authenticate(ctx, () => {
          restore()
          return next()
        })
      } finally {
        restore()
      }
    }
  }
}

// Also serves on ::1 at `port` (see the top); nothing when there is no IPv6 loopback.
function listenOnIpv6Loopback(server, tls, port) {
  return new Promise((resolve, reject) => {
    const ipv6 = https.createServer(tls, server.callback())
    ipv6.once('error', (err) => {
      if (['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(err.code)) resolve()
      else reject(err)
    })
    ipv6.listen(port, '::1', () => resolve())
  })
}

async function main() {
  checkDesAvailable()
  const env = process.env
  const directory = env.KINDLING_S3_DIR
  if (!directory) throw new Error('KINDLING_S3_DIR is not set')
  const bucket = env.KINDLING_S3_BUCKET || 'bucket'
  const accessKey = env.KINDLING_S3_ACCESS_KEY || 'MYACCESSKEY'
  const secretKey = env.KINDLING_S3_SECRET_KEY || 'my-secret'
  const faultRate = Number(env.KINDLING_S3_FAULT_RATE || '0')
  const tlsKey = env.KINDLING_S3_TLS_KEY || ''
  const tlsCert = env.KINDLING_S3_TLS_CERT || ''
  if (Boolean(tlsKey) !== Boolean(tlsCert)) {
    throw new Error('KINDLING_S3_TLS_KEY and KINDLING_S3_TLS_CERT go together')
  }
  const tls = tlsKey ? { key: fs.readFileSync(tlsKey), cert: fs.readFileSync(tlsCert) } : null
  if (tls && faultRate > 0) throw new Error('the fault-injecting proxy speaks plain HTTP only')

  // A distinct key pair, so that a leaked secret can be told from an access key id.
  new AWSAccount(111122223333, 'tests').createKeyPair(accessKey, secretKey)

  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: path.resolve(directory),
    silent: true,
    configureBuckets: [{ name: bucket }],
    ...(tls || {}),
  })
  const { port } = await server.run()
  if (tls) await listenOnIpv6Loopback(server, tls, port)

  let clientPort = port
  if (faultRate > 0) {
    clientPort = await startProxy({
      upstreamPort: port,
      faultRate,
      statsFile: env.KINDLING_S3_STATS_FILE,
      seed: Number(env.KINDLING_S3_SEED || '1'),
    })
  }
  // The parent may close its end of the pipe once it has the port.
  process.stdout.on('error', () => {})
  process.stdout.write(`PORT ${clientPort}\n`)
}

// The parent kills us with SIGTERM; exit at once, without s3rver's shutdown.
process.on('SIGTERM', () => process.exit(0))

main().catch((err) => {
  process.stderr.write(`s3 test server: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
