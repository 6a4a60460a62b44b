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
// Prints exactly one line on stdout, "PORT <n>", the port clients should use
// (the proxy's when there is one), then serves until killed.
//
// Run it as `node --openssl-legacy-provider server.js`: s3rver encrypts its
// ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in the legacy
// provider, so without the flag every listing of more than 1000 keys fails (500).
'use strict'

const crypto = require('node:crypto')
const path = require('node:path')

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

async function main() {
  checkDesAvailable()
  const env = process.env
  const directory = env.KINDLING_S3_DIR
  if (!directory) throw new Error('KINDLING_S3_DIR is not set')
  const bucket = env.KINDLING_S3_BUCKET || 'bucket'
  const accessKey = env.KINDLING_S3_ACCESS_KEY || 'MYACCESSKEY'
  const secretKey = env.KINDLING_S3_SECRET_KEY || 'my-secret'
  const faultRate = Number(env.KINDLING_S3_FAULT_RATE || '0')

  // A distinct key pair, so that a leaked secret can be told from an access key id.
  new AWSAccount(111122223333, 'tests').createKeyPair(accessKey, secretKey)

  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: path.resolve(directory),
    silent: true,
    configureBuckets: [{ name: bucket }],
  })
  const { port } = await server.run()

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
