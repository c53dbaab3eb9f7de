// A no-op Probot app behind Node's http server: baseline (d) of bench/run.sh.
//
// createProbot() reads APP_ID, PRIVATE_KEY and WEBHOOK_SECRET from the environment as a real
// deployment does; createNodeMiddleware verifies X-Hub-Signature-256, builds the event context
// (with an installation Octokit, which fetches no token until it is used) and runs the app, which
// is registered for every event and does nothing. The middleware answers 200 "ok" once the app's
// handlers have returned. This is the cheapest way to run Probot that still verifies signatures;
// `probot run` adds per-request pino-http logging on top.
import { createServer } from "node:http";
import { createNodeMiddleware, createProbot } from "probot";

const app = (probot) => {
  probot.onAny(async () => {});
};

const middleware = await createNodeMiddleware(app, { probot: createProbot() });
const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || "127.0.0.1";
createServer((req, res) => {
  middleware(req, res, () => {
    res.writeHead(404).end();
  });
})
  .listen(port, host, () => {
    console.error(`probot no-op app listening on http://${host}:${port}/api/github/webhooks`);
  });
