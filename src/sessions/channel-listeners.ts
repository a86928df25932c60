/**
 * The local side of the stores' publish/subscribe: who listens to which channel. Each `add` is its
 * own subscription (the same function added twice hears a message twice, and is removed once per
 * removal), as with Redis SUBSCRIBE seen from one listener's side.
 */
export class ChannelListeners {
  readonly #channels = new Map<string, Set<(message: string) => void>>()

  /** Adds a listener; the returned function removes it and tells whether the channel has none left. */
  add (channel: string, listener: (message: string) => void): () => boolean {
    const listeners = this.#channels.get(channel) ?? new Set()
    this.#channels.set(channel, listeners)
    const subscription = (message: string): void => { listener(message) }
    listeners.add(subscription)
    return () => {
      listeners.delete(subscription)
      if (listeners.size > 0 || this.#channels.get(channel) !== listeners) return false
      this.#channels.delete(channel)
      return true
    }
  }

  deliver (channel: string, message: string): void {
    for (const listener of this.#channels.get(channel) ?? []) listener(message)
  }

  clear (): void {
    this.#channels.clear()
  }
}
