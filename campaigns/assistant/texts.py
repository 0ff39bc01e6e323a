"""What the assistant says in its own words, in Spanish, English, Haitian Creole and French.

Answers about migration come from the knowledge base, never from here: these are the frame
around them (menus, the first-answer note, feedback, handover, honest "I don't know").
"""

from __future__ import annotations

from campaigns.topics import TOPICS

TOPIC_TITLES: dict[str, dict[str, str]] = {
    "regular_pathways": {
        "es": "Visas y viajes legales",
        "en": "Visas and legal travel",
        "ht": "Viza ak vwayaj legal",
        "fr": "Visas et voyages légaux",
    },
    "labour_migration": {
        "es": "Trabajo en otro país",
        "en": "Working abroad legally",
        "ht": "Travay nan yon lòt peyi",
        "fr": "Travailler à l'étranger",
    },
    "status_regularization": {
        "es": "Permisos para quedarte",
        "en": "Permits to stay",
        "ht": "Pèmi pou rete",
        "fr": "Permis de séjour",
    },
    "asylum_protection": {
        "es": "Asilo y refugio",
        "en": "Asylum and refuge",
        "ht": "Azil ak refij",
        "fr": "Asile et refuge",
    },
    "documents_ids": {
        "es": "Pasaporte y documentos",
        "en": "Passports and documents",
        "ht": "Paspò ak papye",
        "fr": "Passeport et documents",
    },
    "irregular_route_risks": {
        "es": "Peligros de rutas irregulares",
        "en": "Dangers of irregular routes",
        "ht": "Danje wout ilegal yo",
        "fr": "Dangers des routes irrégulières",
    },
    "scams_fraud": {
        "es": "Estafas y fraudes",
        "en": "Scams and fraud",
        "ht": "Eskwokri ak fwod",
        "fr": "Arnaques et fraudes",
    },
    "human_trafficking": {
        "es": "Trata de personas",
        "en": "Human trafficking",
        "ht": "Trafik moun",
        "fr": "Traite des personnes",
    },
    "violence_gbv": {
        "es": "Violencia y amenazas",
        "en": "Violence and threats",
        "ht": "Vyolans ak menas",
        "fr": "Violences et menaces",
    },
    "children_families": {
        "es": "Niñas, niños y familias",
        "en": "Children and families",
        "ht": "Timoun ak fanmi",
        "fr": "Enfants et familles",
    },
    "missing_family_links": {
        "es": "Buscar a un familiar",
        "en": "Finding a missing relative",
        "ht": "Chèche yon fanmi",
        "fr": "Retrouver un proche",
    },
    "health_services": {"es": "Salud", "en": "Health", "ht": "Sante", "fr": "Santé"},
    "shelter_basic_needs": {
        "es": "Albergue, comida y ayuda",
        "en": "Shelter, food and aid",
        "ht": "Abri, manje ak èd",
        "fr": "Hébergement, nourriture, aide",
    },
    "legal_aid_rights": {
        "es": "Tus derechos y ayuda legal",
        "en": "Your rights and legal aid",
        "ht": "Dwa ou ak èd legal",
        "fr": "Vos droits et aide juridique",
    },
    "return_reintegration": {
        "es": "Regresar a tu país",
        "en": "Going back home",
        "ht": "Retounen lakay",
        "fr": "Rentrer dans son pays",
    },
    "emergencies_disasters": {
        "es": "Emergencias y desastres",
        "en": "Emergencies and disasters",
        "ht": "Ijans ak katastwòf",
        "fr": "Urgences et catastrophes",
    },
    "remittances_money": {
        "es": "Enviar dinero",
        "en": "Sending money",
        "ht": "Voye lajan",
        "fr": "Envoyer de l'argent",
    },
    "rumour_check": {
        "es": "¿Es verdad que...?",
        "en": "Is it true that...?",
        "ht": "Èske se vre...?",
        "fr": "Est-ce vrai que... ?",
    },
    "info_hubs": {
        "es": "Oficinas y puntos de información",
        "en": "Offices and info points",
        "ht": "Biwo ak pwen enfòmasyon",
        "fr": "Bureaux et points d'information",
    },
    "about_service": {
        "es": "Sobre este servicio",
        "en": "About this service",
        "ht": "Sou sèvis sa a",
        "fr": "À propos de ce service",
    },
}
assert set(TOPIC_TITLES) == set(TOPICS)

# Order of the numbered menu: the most asked first; numbers are what people reply.
MENU_ORDER: tuple[str, ...] = TOPICS

LANGUAGE_MENU = "1 Español\n2 English\n3 Kreyòl ayisyen\n4 Français"
LANGUAGE_BY_NUMBER = {"1": "es", "2": "en", "3": "ht", "4": "fr"}

_T: dict[str, dict[str, str]] = {
    "menu_intro": {
        "es": "Responde con el número del tema:",
        "en": "Reply with the number of a topic:",
        "ht": "Reponn ak nimewo sijè a:",
        "fr": "Répondez avec le numéro du sujet :",
    },
    "welcome": {
        "es": "¡Hola! Te doy información confiable sobre migración segura y regular.",
        "en": "Hello! I give you reliable information on safe, regular migration.",
        "ht": "Bonjou! M ba ou enfòmasyon ou ka fè konfyans sou migrasyon an sekirite e legal.",
        "fr": "Bonjour ! Je vous donne des informations fiables sur la migration sûre et "
        "régulière.",
    },
    "disclaimer": {
        "es": "Servicio gratuito. Fuentes oficiales. No es asesoría legal.",
        "en": "Free service. Official sources. Not legal advice.",
        "ht": "Sèvis gratis. Sous ofisyèl. Se pa konsèy legal.",
        "fr": "Service gratuit. Sources officielles. Pas un conseil juridique.",
    },
    "source": {
        "es": "Fuente: {url} (revisado {date})",
        "en": "Source: {url} (reviewed {date})",
        "ht": "Sous: {url} (revize {date})",
        "fr": "Source : {url} (vérifié le {date})",
    },
    "feedback_prompt": {
        "es": "¿Te sirvió? 1 Sí / 2 No",
        "en": "Was this useful? 1 Yes / 2 No",
        "ht": "Èske sa te ede w? 1 Wi / 2 Non",
        "fr": "Cela vous a aidé ? 1 Oui / 2 Non",
    },
    "feedback_yes": {
        "es": "¡Gracias! Escribe MENU para ver otros temas.",
        "en": "Thank you! Send MENU to see other topics.",
        "ht": "Mèsi! Ekri MENU pou wè lòt sijè.",
        "fr": "Merci ! Écrivez MENU pour voir d'autres sujets.",
    },
    "feedback_no": {
        "es": "Gracias por decírnoslo. Escribe MENU para ver otros temas o PERSONA para hablar "
        "con alguien.",
        "en": "Thanks for telling us. Send MENU for other topics or PERSON to talk to someone.",
        "ht": "Mèsi paske w di nou sa. Ekri MENU pou lòt sijè oswa MOUN pou pale ak yon moun.",
        "fr": "Merci de nous le dire. Écrivez MENU pour d'autres sujets ou PERSONNE pour parler "
        "à quelqu'un.",
    },
    "unknown": {
        "es": "Lo siento, no tengo una respuesta confiable para eso. Escribe MENU para ver los "
        "temas, o PERSONA para hablar con alguien de nuestro equipo.",
        "en": "Sorry, I don't have a reliable answer for that. Send MENU to see the topics, or "
        "PERSON to talk to someone from our team.",
        "ht": "Eskize m, m pa gen yon repons ou ka fè konfyans pou sa. Ekri MENU pou wè sijè yo, "
        "oswa MOUN pou pale ak yon moun nan ekip nou an.",
        "fr": "Désolé, je n'ai pas de réponse fiable à cela. Écrivez MENU pour voir les sujets, "
        "ou PERSONNE pour parler à quelqu'un de notre équipe.",
    },
    "no_answer_for_topic": {
        "es": "Todavía no tengo información verificada sobre este tema para tu país.",
        "en": "I don't have verified information on this topic for your country yet.",
        "ht": "M poko gen enfòmasyon verifye sou sijè sa a pou peyi w.",
        "fr": "Je n'ai pas encore d'information vérifiée sur ce sujet pour votre pays.",
    },
    "safety_first": {
        "es": "Si estás en peligro ahora, llama a:",
        "en": "If you are in danger now, call:",
        "ht": "Si w an danje kounye a, rele:",
        "fr": "Si vous êtes en danger maintenant, appelez :",
    },
    "safety_no_hotline": {
        "es": "Si estás en peligro ahora, llama al número de emergencias de tu país.",
        "en": "If you are in danger now, call your country's emergency number.",
        "ht": "Si w an danje kounye a, rele nimewo ijans peyi w la.",
        "fr": "Si vous êtes en danger maintenant, appelez le numéro d'urgence de votre pays.",
    },
    "offer_person": {
        "es": "¿Quieres hablar con una persona de nuestro equipo? Responde SÍ o NO.",
        "en": "Would you like to talk to a person from our team? Reply YES or NO.",
        "ht": "Èske ou vle pale ak yon moun nan ekip nou an? Reponn WI oswa NON.",
        "fr": "Voulez-vous parler à une personne de notre équipe ? Répondez OUI ou NON.",
    },
    "handover_opened": {
        "es": "Gracias. Una persona de nuestro equipo te escribirá aquí lo antes posible. Puedes "
        "seguir escribiendo.",
        "en": "Thank you. A person from our team will write to you here as soon as possible. You "
        "can keep writing.",
        "ht": "Mèsi. Yon moun nan ekip nou an ap ekri w la a pi vit posib. Ou ka kontinye ekri.",
        "fr": "Merci. Une personne de notre équipe vous écrira ici dès que possible. Vous pouvez "
        "continuer à écrire.",
    },
    "handover_declined": {
        "es": "De acuerdo. Escribe MENU cuando quieras ver los temas.",
        "en": "All right. Send MENU whenever you want to see the topics.",
        "ht": "Dakò. Ekri MENU lè ou vle wè sijè yo.",
        "fr": "D'accord. Écrivez MENU quand vous voulez voir les sujets.",
    },
    "bot": {
        "es": "Soy un asistente automático. Escribe PERSONA si quieres hablar con alguien de "
        "nuestro equipo.",
        "en": "I am an automated assistant. Send PERSON if you want to talk to someone from our "
        "team.",
        "ht": "Mwen se yon asistan otomatik. Ekri MOUN si ou vle pale ak yon moun nan ekip nou an.",
        "fr": "Je suis un assistant automatique. Écrivez PERSONNE si vous voulez parler à "
        "quelqu'un de notre équipe.",
    },
    "goodbye": {
        "es": "Cuídate mucho. Aquí estaré si necesitas información.",
        "en": "Take care. I'm here whenever you need information.",
        "ht": "Pran swen tèt ou. M la si w bezwen enfòmasyon.",
        "fr": "Prenez soin de vous. Je suis là si vous avez besoin d'informations.",
    },
    "thanks": {
        "es": "Con gusto. Escribe MENU si necesitas algo más.",
        "en": "You're welcome. Send MENU if you need anything else.",
        "ht": "Pa gen pwoblèm. Ekri MENU si w bezwen lòt bagay.",
        "fr": "Avec plaisir. Écrivez MENU si vous avez besoin d'autre chose.",
    },
    "out_of_scope": {
        "es": "Solo puedo ayudarte con información sobre migración segura y regular. Escribe "
        "MENU para ver los temas.",
        "en": "I can only help with information on safe, regular migration. Send MENU to see the "
        "topics.",
        "ht": "M ka ede w sèlman ak enfòmasyon sou migrasyon an sekirite e legal. Ekri MENU pou "
        "wè sijè yo.",
        "fr": "Je peux seulement vous aider sur la migration sûre et régulière. Écrivez MENU pour "
        "voir les sujets.",
    },
    "choose_language": {
        "es": "¿En qué idioma prefieres? Responde con el número:",
        "en": "Which language do you prefer? Reply with the number:",
        "ht": "Ki lang ou pito? Reponn ak nimewo a:",
        "fr": "Quelle langue préférez-vous ? Répondez avec le numéro :",
    },
    "language_set": {
        "es": "Listo, te escribiré en español.",
        "en": "Done, I'll write to you in English.",
        "ht": "Dakò, m ap ekri w an kreyòl.",
        "fr": "C'est fait, je vous écrirai en français.",
    },
    "hubs_intro": {
        "es": "Puntos de información cerca de ti:",
        "en": "Information points near you:",
        "ht": "Pwen enfòmasyon toupre w:",
        "fr": "Points d'information près de vous :",
    },
    "example": {
        "es": "ejemplo de demostración, no es real",
        "en": "demo example, not real",
        "ht": "egzanp demonstrasyon, se pa vre",
        "fr": "exemple de démonstration, pas réel",
    },
    "no_hubs": {
        "es": "Todavía no tenemos puntos de información registrados para tu comunidad.",
        "en": "We have no information points registered for your community yet.",
        "ht": "Nou poko gen pwen enfòmasyon anrejistre pou kominote w la.",
        "fr": "Nous n'avons pas encore de point d'information enregistré pour votre communauté.",
    },
    "media_only": {
        "es": "Recibí tu archivo, pero solo puedo leer texto. Escribe tu pregunta, por favor.",
        "en": "I got your file, but I can only read text. Please write your question.",
        "ht": "M resevwa fichye w la, men m ka li tèks sèlman. Tanpri ekri kesyon w lan.",
        "fr": "J'ai reçu votre fichier, mais je ne lis que le texte. Écrivez votre question, "
        "s'il vous plaît.",
    },
    "unavailable": {
        "es": "Lo sentimos, el asistente no está disponible en este momento. Intenta de nuevo "
        "más tarde. Escribe AYUDA para saber qué es este servicio.",
        "en": "Sorry, the assistant is not available right now. Please try again later. Send "
        "HELP to learn about this service.",
        "ht": "Nou regret sa, asistan an pa disponib kounye a. Tanpri eseye ankò pita. Voye ÈD "
        "pou konnen sa sèvis sa a ye.",
        "fr": "Désolé, l'assistant n'est pas disponible pour le moment. Réessayez plus tard. "
        "Envoyez AIDE pour savoir ce qu'est ce service.",
    },
}


def say(key: str, language: str, **values: str) -> str:
    table = _T[key]
    text = table.get(language) or table["es"]
    return text.format(**values) if values else text


def topic_menu(language: str) -> str:
    lines = [say("menu_intro", language)]
    for number, topic in enumerate(MENU_ORDER, start=1):
        titles = TOPIC_TITLES[topic]
        lines.append(f"{number} {titles.get(language) or titles['es']}")
    return "\n".join(lines)


def language_menu(language: str) -> str:
    return f"{say('choose_language', language)}\n{LANGUAGE_MENU}"


def menu_topic(number_text: str) -> str | None:
    """The topic a menu number picks, or None."""
    text = number_text.strip().rstrip(".)")
    if text.isdigit() and 1 <= int(text) <= len(MENU_ORDER):
        return MENU_ORDER[int(text) - 1]
    return None
