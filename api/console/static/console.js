// The live parts of the review queue: new interventions and decisions arrive over server-sent
// events; actions are sent with fetch and the CSRF token; keyboard shortcuts. Without script
// the page still works: its forms post and the page reloads.
(() => {
  'use strict';
  const queue = document.getElementById('queue');
  if (!queue) return;
  const segment = queue.dataset.segment;
  const csrf = queue.dataset.csrf;
  const cards = document.getElementById('cards');
  const decided = document.getElementById('decided');
  const live = document.getElementById('live');
  const count = document.getElementById('pending-count');
  const empty = document.getElementById('empty');
  const base = `/console/classes/${segment}`;

  function refreshCount() {
    const n = cards.querySelectorAll('article.card').length;
    count.textContent = String(n);
    empty.hidden = n > 0;
  }

  async function fetchCard(id) {
    const answer = await fetch(`${base}/interventions/${encodeURIComponent(id)}/card`, { credentials: 'same-origin' });
    if (answer.status === 401) { window.location.reload(); return null; }
    if (!answer.ok) return null;
    const holder = document.createElement('div');
    holder.innerHTML = await answer.text();
    return holder.querySelector('article.card');
  }

  async function arrive(id) {
    if (document.getElementById(`i-${id}`)) return;
    const card = await fetchCard(id);
    if (!card || document.getElementById(`i-${id}`)) return;
    if (card.classList.contains('status-pending_review')) {
      cards.prepend(card);
      live.textContent = 'A new intervention arrived.';
    } else {
      decided.prepend(card);
    }
    refreshCount();
  }

  async function decide(id) {
    const card = await fetchCard(id);
    // Both this page's own action and the live decision land here: keep one card.
    const old = [...document.querySelectorAll('article.card')].filter((e) => e.dataset.intervention === id);
    const hadFocus = old.some((e) => e.contains(document.activeElement));
    old.forEach((e) => e.remove());
    if (card) decided.prepend(card);
    refreshCount();
    // Keyboard users go on with the next card waiting.
    if (hadFocus) cards.querySelector('article.card')?.focus();
  }

  // After a drop the browser resumes the feed from its last event id (new interventions come
  // again); decisions taken meanwhile are read back from the cards still waiting.
  async function recheck() {
    for (const card of [...cards.querySelectorAll('article.card')]) {
      const fresh = await fetchCard(card.dataset.intervention);
      if (fresh && !fresh.classList.contains('status-pending_review')) {
        card.remove();
        decided.prepend(fresh);
      }
    }
    refreshCount();
  }

  function connect() {
    const source = new EventSource(`${base}/live`);
    let dropped = false;
    source.addEventListener('open', () => {
      live.textContent = 'Live: new interventions appear as they arrive.';
      if (dropped) { dropped = false; recheck(); }
    });
    source.addEventListener('intervention', (e) => { arrive(JSON.parse(e.data).intervention_id); });
    source.addEventListener('decision', (e) => {
      const d = JSON.parse(e.data);
      decide(d.intervention_id);
      live.textContent = `${d.by}: ${d.action} (${d.status}).`;
    });
    source.addEventListener('error', () => { dropped = true; live.textContent = 'Reconnecting to the live feed…'; });
  }

  async function act(form, action) {
    const card = form.closest('article.card');
    const id = card.dataset.intervention;
    const body = new FormData(form);
    const answer = await fetch(`${base}/interventions/${encodeURIComponent(id)}/${action}`, {
      method: 'POST', body, credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf, 'X-Console-Fetch': '1' },
    });
    if (answer.status === 401) { window.location.assign('/console/login'); return; }
    const result = await answer.json();
    if (!answer.ok) { live.textContent = result.error; return; }
    await decide(id);
    live.textContent = `Done: ${action}.`;
  }

  document.addEventListener('submit', (event) => {
    const form = event.target.closest('form.actions');
    if (!form) return;
    event.preventDefault();
    const button = event.submitter;
    act(form, (button && button.dataset.action) || 'approve');
  });

  function focused() { return document.activeElement && document.activeElement.closest('article.card'); }
  function move(step) {
    const all = [...cards.querySelectorAll('article.card')];
    if (!all.length) return;
    const at = all.indexOf(focused());
    all[Math.max(0, Math.min(all.length - 1, at + step))].focus();
  }
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches('input, textarea')) {
      if (event.key === 'Escape') event.target.closest('article.card')?.focus();
      return;
    }
    const card = focused();
    const form = card && card.querySelector('form.actions');
    if (event.key === 'j') { move(1); event.preventDefault(); }
    else if (event.key === 'k') { move(-1); event.preventDefault(); }
    else if (form && event.key === 'n') { form.querySelector('input[name=note]').focus(); event.preventDefault(); }
    else if (form && ({ a: 'approve', d: 'dismiss', e: 'escalate' })[event.key]) {
      act(form, ({ a: 'approve', d: 'dismiss', e: 'escalate' })[event.key]);
      event.preventDefault();
    }
  });

  refreshCount();
  connect();
})();
