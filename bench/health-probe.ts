// A probe loop in its own process, as a kubelet is: GET /health on a Unix
// socket, one request at a time, 20 ms apart, until stdin closes; then one
// JSON line on stdout: {latencies: [ms...], failures: [message...]}. The
// bench that sends a reload cannot time the probes itself: reading and
// writing an 80 MB body blocks its own event loop for hundreds of ms.
//   node dist/bench/health-probe.js SOCKET
import { apiCall } from '../src/cli/ctl';

async function main(): Promise<void> {
  const sock = process.argv[2];
  let stop = false;
  process.stdin.on('end', () => (stop = true)).on('close', () => (stop = true)).resume();
  const latencies: number[] = [];
  const failures: string[] = [];
  while (!stop) {
    const s = performance.now();
    try {
      const r = await apiCall({ socket: sock }, 'GET', '/health');
      if (r.status !== 200) failures.push(`status ${r.status}`);
      else latencies.push(performance.now() - s);
    } catch (err) {
      failures.push((err as Error).message);
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  process.stdout.write(`${JSON.stringify({ latencies, failures })}\n`);
}

void main();
