// Citation clicks: an element carrying a citation (a source card or an inline [n] marker,
// in any message, old or new) has a class "rag-c-<base64url JSON>" (the chat's sanitizer
// keeps classes but drops data-* attributes). A click writes that token into the hidden
// #rag-cite-target textbox, whose input event asks the server for the source viewer.
// A nonce makes a second click on the same citation a new input.
(() => {
  const PREFIX = "rag-c-";
  const target = () =>
    document.querySelector("#rag-cite-target textarea, #rag-cite-target input");
  const tokenOf = (el) => Array.from(el.classList).find((c) => c.startsWith(PREFIX));

  function open(el) {
    const box = target();
    const token = tokenOf(el);
    if (!box || !token) return;
    box.value = JSON.stringify({ token, t: Date.now() });
    box.dispatchEvent(new Event("input", { bubbles: true }));
    document.querySelectorAll(".rag-active").forEach((e) => e.classList.remove("rag-active"));
    el.classList.add("rag-active");
  }

  // Scroll the chat so its latest question is at the top of the view.
  window.ragShowLatest = () => {
    const show = () => {
      const qs = document.querySelectorAll("#rag-chat .rag-question");
      const q = qs[qs.length - 1];
      if (!q) return;
      let box = q.parentElement;
      while (box && !(box.scrollHeight > box.clientHeight &&
                      /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
        box = box.parentElement;
      }
      if (!box) return;
      box.scrollTop += q.getBoundingClientRect().top - box.getBoundingClientRect().top - 12;
    };
    requestAnimationFrame(() => requestAnimationFrame(show));
  };

  const find = (e) =>
    e.target instanceof Element ? e.target.closest(".rag-cite, .rag-ref") : null;

  document.addEventListener("click", (e) => {
    const el = find(e);
    if (el && tokenOf(el)) { e.preventDefault(); e.stopPropagation(); open(el); }
  }, true);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    const el = find(e);
    if (el && tokenOf(el)) { e.preventDefault(); open(el); }
  }, true);
})();
