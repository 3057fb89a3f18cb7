/**
 * What the baseline publishes on a user's channel: the `payload` of the `next` frame the service
 * sends for a completion on the bench's subscription (cursor, replayed, task { id status result
 * finishedAt }). Its server wraps it in a frame without parsing it.
 */
export function completionPayload(taskId: string, result: unknown, sequence: number | string): string {
  const now = Date.now();
  return JSON.stringify({
    data: {
      taskCompleted: {
        cursor: `${now}-${sequence}`,
        replayed: false,
        task: { id: taskId, status: 'SUCCEEDED', result, finishedAt: new Date(now).toISOString() },
      },
    },
  });
}
