// Preloaded (`node --import`) by the shutdown e2e test into the real process: SIGUSR2 makes it
// throw from a timer, as a bug in a callback would (CRASH_AS=reject: a rejected promise nothing
// handles instead). The message carries a marker the test looks for in the fatal log line.
import { setImmediate } from 'node:timers';

process.on('SIGUSR2', () => {
  const error = new TypeError('crash-on-signal: a bug in a callback');
  if (process.env.CRASH_AS === 'reject') void Promise.reject(error);
  else
    setImmediate(() => {
      throw error;
    });
});
